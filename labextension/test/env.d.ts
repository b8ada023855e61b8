// Vite's `?raw` imports give a file's text: tests read the stylesheet without node typings.
declare module "*?raw" {
  const text: string;
  export default text;
}

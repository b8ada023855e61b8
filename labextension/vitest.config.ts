import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts", "test/**/*.test.tsx"],
    // The stylesheet test reads dag.css as text; vitest blanks CSS unless told otherwise.
    css: true,
  },
});

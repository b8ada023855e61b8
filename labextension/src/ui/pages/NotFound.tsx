/** A path the UI does not know. */
import { Link } from "../components/common";
import { useTitle } from "../hooks";

export function NotFoundPage({ path }: { path: string }) {
  useTitle("Not found");
  return (
    <div class="ui-page">
      <h1>Nothing at {path}</h1>
      <p>
        Go to the <Link to={{ page: "dashboard" }}>dashboard</Link> or the <Link to={{ page: "flows" }}>flows</Link>.
      </p>
    </div>
  );
}

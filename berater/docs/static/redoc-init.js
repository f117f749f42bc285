// Starts Redoc on /docs/redoc/ (a module: Redoc's bundle is one), without its telemetry.
import { init } from "./redoc.standalone.js";

const element = document.getElementById("redoc");
init(new URL(element.dataset.openapi, document.baseURI).href, { disableTelemetry: true }, element);

/* /api/docs: start Swagger UI from data attributes (the CSP allows no inline script). */
(function () {
  "use strict";
  var box = document.getElementById("swagger-ui-container");
  if (!box || typeof window.SwaggerUIBundle !== "function") { return; }
  var config = { url: box.getAttribute("data-spec-url"), dom_id: "#swagger-ui-container" };
  var extra = JSON.parse(box.getAttribute("data-config") || "{}");
  Object.keys(extra).forEach(function (key) { config[key] = extra[key]; });
  window.ui = window.SwaggerUIBundle(config);
})();

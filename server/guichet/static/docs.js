// The API documentation page: Swagger UI (bundled, no CDN) on this server's /openapi.json.
"use strict";
window.addEventListener("DOMContentLoaded", () => {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null, // never calls validator.swagger.io
  });
});

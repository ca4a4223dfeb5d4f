// Swagger UI for /openapi.json, from assets the server itself serves (no CDN).
window.ui = SwaggerUIBundle({ url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true });

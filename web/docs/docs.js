// Renders the server's live OpenAPI document (/openapi.json, rebuilt at every deploy and undeploy).
// A token saved by the dashboard (localStorage "dynserve.token") is sent as a bearer token.
/* global SwaggerUIBundle */
(function () {
  const token = window.localStorage ? window.localStorage.getItem("dynserve.token") : null;
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    tryItOutEnabled: false,
    requestInterceptor: (req) => {
      if (token) req.headers.Authorization = "Bearer " + token;
      return req;
    },
  });
})();

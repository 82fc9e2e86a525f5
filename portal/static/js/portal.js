// Salesloop's own behaviour. No inline scripts anywhere (strict CSP): everything is here.
(function () {
  "use strict";

  // Every htmx request carries the CSRF token. The token lives inside <body> so that a
  // boosted navigation (which swaps the body) always brings the current one.
  document.addEventListener("htmx:configRequest", function (event) {
    var holder = document.getElementById("portal-csrf");
    if (holder) {
      event.detail.headers["X-CSRFToken"] = holder.dataset.token;
    }
  });

  // <select data-autosubmit> submits its form on change (the language switch, filters).
  document.addEventListener("change", function (event) {
    var target = event.target;
    if (target.matches && target.matches("[data-autosubmit]") && target.form) {
      target.form.requestSubmit();
    }
  });

  // A failed htmx request shows a message instead of silently doing nothing.
  document.addEventListener("htmx:responseError", function (event) {
    var box = document.getElementById("portal-request-error");
    if (box) {
      box.hidden = false;
    }
  });
  document.addEventListener("htmx:sendError", function () {
    var box = document.getElementById("portal-request-error");
    if (box) {
      box.hidden = false;
    }
  });
})();

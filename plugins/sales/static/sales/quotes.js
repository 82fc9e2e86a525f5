// Quotations (P3.3). No inline scripts anywhere (strict CSP): the behaviour is here.
// Loaded on the quotation pages; with htmx boosting a page may bring it again, so it
// installs its listeners once.
(function () {
  "use strict";
  if (window.salesloopQuotes) {
    return;
  }
  window.salesloopQuotes = true;

  document.addEventListener("click", function (event) {
    var target = event.target.closest ? event.target.closest("[data-print], [data-remove-line]") : null;
    if (!target) {
      return;
    }
    // "Print": the browser's own print dialog (also "Save as PDF").
    if (target.matches("[data-print]")) {
      event.preventDefault();
      window.print();
      return;
    }
    // Removing a line row happens in the page; without JavaScript the button submits
    // the form and the server leaves the row out.
    var row = target.closest("tr");
    if (row) {
      event.preventDefault();
      var body = row.parentElement;
      row.remove();
      var next = body && body.querySelector("select, input");
      if (next) {
        next.focus();
      }
    }
  });
})();

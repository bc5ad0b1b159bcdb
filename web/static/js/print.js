/* Print buttons on ledger pages (no inline handlers under the CSP). */
(function () {
  "use strict";
  Array.prototype.forEach.call(document.querySelectorAll(".js-print"), function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
})();

// The catalog page's only script: reload the page every data-reload seconds
// while it is visible, so a screen on the wall stays current. No framework.
(function () {
  var seconds = parseInt(document.body.getAttribute("data-reload"), 10);
  if (!(seconds > 0)) return;
  setInterval(function () {
    if (document.visibilityState === "visible") location.reload();
  }, seconds * 1000);
})();

// A widget that fails to load or is too slow shows a notice in its own card only.
document.addEventListener("DOMContentLoaded", function () {
  function unavailable(event) {
    var card = event.detail && event.detail.elt;
    if (!card || !card.classList || !card.classList.contains("card")) return;
    var body = card.querySelector(".body");
    if (body) body.textContent = "This widget is not available right now.";
    card.classList.add("unavailable");
  }
  ["htmx:timeout", "htmx:responseError", "htmx:sendError"].forEach(function (name) {
    document.body.addEventListener(name, unavailable);
  });
});

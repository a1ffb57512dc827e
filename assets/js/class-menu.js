// The class pages' menu button (app/classmode.py): shows or hides the sidebar; on a phone the
// page starts with the sidebar folded, so the plots or the text come first.
(() => {
  const menu = document.getElementById("menu"), sidebar = document.getElementById("sidebar");
  if (!menu || !sidebar) return;
  menu.addEventListener("click", () => {
    const closed = sidebar.classList.toggle("closed");
    menu.setAttribute("aria-expanded", closed ? "false" : "true");
  });
  if (window.matchMedia("(max-width: 800px)").matches) {
    sidebar.classList.add("closed");
    menu.setAttribute("aria-expanded", "false");
  }
})();

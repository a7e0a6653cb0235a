() => {
  // The page's layout on a phone: the sidebar (conversations, flows) overlays the whole screen there, so it starts
  // closed and closes again once a conversation, a new chat or a flow has been chosen. Desktop keeps it open.
  if (window.ifPage) return;
  window.ifPage = true;
  const narrow = () => window.matchMedia("(max-width: 768px)").matches;
  const close = () => {
    const bar = document.querySelector("#sidebar");
    if (bar && bar.classList.contains("open")) bar.querySelector(".toggle-button").click();
  };
  const first = setInterval(() => {
    if (!document.querySelector("#sidebar")) return;
    clearInterval(first);
    if (narrow()) close();
  }, 50);
  document.addEventListener("click", (e) => {
    if (narrow() && e.target.closest("#chat-list label, #new-chat, #flow-menu ul li, #delete-btn")) {
      setTimeout(close, 300);
    }
  }, true);
}

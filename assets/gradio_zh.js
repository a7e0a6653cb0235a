// Gradio's own status words are fixed English in Gradio ("queue: 1/2 |", "processing |" over a busy component, the
// chat's "Loading content" for screen readers, a toast's "Error" / "Warning" title and the upload box's "Invalid file
// type" refusal): a Chinese page shows them in Chinese. Runs from the page's
// <head>, before the app starts, so no English shows even during the first events. The page's language is talk.js's:
// #talk-status's data-lang, or the browser's while that is "auto" or not there yet.
(() => {
  const chinese = () => {
    const set = document.querySelector("#talk-status")?.dataset.lang || "auto";
    return set === "zh" || (set === "auto" && (navigator.language || "").toLowerCase().startsWith("zh"));
  };
  const KINDS = { image: "图片", audio: "语音", video: "视频", text: "文本" };
  const kinds = (list) => list.split(", ").map((kind) => KINDS[kind] || kind).join("或");
  const WORDS = [
    [/^queue: (\d+)\/(\d*) \|/, "排队：$1/$2 |"],
    [/^processing \|/, "处理中 |"],
    [/^Loading content$/, "正在加载"],
    // the upload box's refusal of a file it does not take ("Invalid file type: a.pdf. Only image, audio allowed.")
    [/^Invalid file types?: (.+)\. Only (.+) allowed\.$/, (_, names, types) => `无法添加“${names}”：只能发送${kinds(types)}。`],
  ];
  const TITLES = { Error: "错误", Warning: "注意", Info: "提示", Success: "完成" }; // a toast's title
  const translate = (node) => {
    const text = node.nodeValue;
    if (!text) return;
    if (node.parentElement?.classList.contains("toast-title")) {
      const title = TITLES[text.trim()];
      if (title) node.nodeValue = title;
      return;
    }
    if (!/queue|processing|Loading|Invalid file/.test(text)) return;
    let out = text;
    for (const [from, to] of WORDS) out = out.replace(from, to);
    if (out !== text) node.nodeValue = out;
  };
  const walk = (root) => {
    if (root.nodeType === Node.TEXT_NODE) return translate(root);
    const it = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
    for (let n = it.nextNode(); n; n = it.nextNode()) translate(n);
  };
  new MutationObserver((changes) => {
    if (!chinese()) return;
    for (const c of changes) {
      if (c.type === "characterData") translate(c.target);
      else c.addedNodes.forEach(walk);
    }
  }).observe(document.documentElement, { subtree: true, childList: true, characterData: true });
})();

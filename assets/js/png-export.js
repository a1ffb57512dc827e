// Browser side of "Plots (PNG)" (app/pages/share.py): every visible Bokeh plot of the page
// exported by Bokeh itself (as its save tool does) and drawn at its place on screen into one
// PNG. Arguments: name (the file's name without .png).
const Plot = Bokeh.Models.Plot;
const views = [...Bokeh.index.query((v) => v.model instanceof Plot)].filter((v) => {
  const r = v.el.getBoundingClientRect();
  return r.width > 0 && r.height > 0 && v.el.offsetParent !== null;
});
if (views.length === 0) { alert("No plot is shown yet."); return; }
const rects = views.map((v) => v.el.getBoundingClientRect());
const x0 = Math.min(...rects.map((r) => r.left)), y0 = Math.min(...rects.map((r) => r.top));
const x1 = Math.max(...rects.map((r) => r.right)), y1 = Math.max(...rects.map((r) => r.bottom));
const k = window.devicePixelRatio || 1;
const canvas = document.createElement("canvas");
canvas.width = Math.ceil((x1 - x0) * k); canvas.height = Math.ceil((y1 - y0) * k);
const ctx = canvas.getContext("2d");
ctx.fillStyle = "white"; ctx.fillRect(0, 0, canvas.width, canvas.height);
views.forEach((v, i) => {
  const r = rects[i];
  ctx.drawImage(v.export("png").canvas, (r.left - x0) * k, (r.top - y0) * k, r.width * k, r.height * k);
});
canvas.toBlob((blob) => {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name + ".png";
  document.body.appendChild(a); a.click(); a.remove();
}, "image/png");

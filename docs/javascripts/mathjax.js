// MathJax for the formulas: pymdownx.arithmatex's (generic mode, \( \) and \[ \]) and the
// notebooks' Markdown cells (rendered by mkdocs-jupyter, $ and $$). Only those elements are
// typeset, so a dollar sign anywhere else on a page stays a dollar sign.
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"], ["$", "$"]],
    displayMath: [["\\[", "\\]"], ["$$", "$$"]],
    processEscapes: true,
    processEnvironments: true
  },
  startup: {
    typeset: false
  }
};

document$.subscribe(() => {
  const elements = document.querySelectorAll(".arithmatex, .jp-RenderedMarkdown")
  MathJax.startup.promise.then(() => {
    MathJax.startup.output.clearCache()
    MathJax.typesetClear()
    MathJax.texReset()
    return MathJax.typesetPromise(Array.from(elements))
  })
})

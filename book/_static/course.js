/* The course's small overrides of the pinned theme (pydata-sphinx-theme 0.17.1 with
 * sphinx-book-theme 1.3.0), loaded on every page by book/_ext/course_web.py.
 * Each block names the upstream issue it works around: delete the block when the pinned theme
 * fixes it (tests/test_browser_book.py checks the behaviour, not this code).
 */
(() => {
  "use strict";

  const onReady = (callback) => {
    if (document.readyState === "loading") {
      document.addEventListener("DOMContentLoaded", callback);
    } else {
      callback();
    }
  };

  /* 1. Sidebar toggles.
   * Both themes bind their click handlers to the FIRST `.primary-toggle` / `.secondary-toggle`
   * of the page: pydata-sphinx-theme opens the sidebar as a dialog (phones), sphinx-book-theme
   * collapses it (desktops, >= 992 px). Since pydata-sphinx-theme 0.17 that first button is one
   * in its own navbar, which sphinx-book-theme hides; the buttons readers see, in the article
   * header, have no handler, so the menu never opens on a phone and never collapses on a desktop.
   * pydata/pydata-sphinx-theme#2451, executablebooks/sphinx-book-theme#988 (phones) and #865
   * (desktops). Fix: a click on a visible toggle clicks the bound one. */
  const forwardSidebarToggles = () => {
    for (const kind of ["primary", "secondary"]) {
      const [bound, ...visible] = document.querySelectorAll(`.${kind}-toggle`);
      if (!bound) {
        continue;
      }
      const label = kind === "primary" ? "Site navigation" : "On this page";
      for (const button of visible) {
        button.setAttribute("aria-label", label);
        button.addEventListener("click", (event) => {
          event.preventDefault();
          event.stopImmediatePropagation();
          bound.click();
        });
      }
    }
  };

  /* 2. Accessible names (axe-core 4.14, WCAG 2.5.3 "label in name" and 4.1.2).
   * - The search button's aria-label ("Search") leaves out its visible "Ctrl+K"; the colour-mode
   *   button's name ("Color mode") leaves out the title of the icon it shows ("Light", ...)
   *   (pydata-sphinx-theme templates).
   * - Hidden code cells: MyST-NB labels the <summary> "Toggle hidden content" while it shows
   *   "Show code cell source" (myst-nb hide-input template).
   * - The navigation's expand/collapse <summary> holds only an icon: no name at all
   *   (pydata-sphinx-theme toctree). */
  const fixAccessibleNames = () => {
    for (const button of document.querySelectorAll(".search-button-field")) {
      button.removeAttribute("aria-label");  // its name is then what it shows: "Search Ctrl+K"
    }
    for (const button of document.querySelectorAll(".theme-switch-button")) {
      // Its visible text is the title of the icon shown ("Light", "Dark" or "System Settings").
      button.setAttribute("aria-label", "Color mode: Light, Dark or System Settings");
    }
    for (const summary of document.querySelectorAll("details.hide > summary[aria-label]")) {
      summary.removeAttribute("aria-label");
    }
    for (const summary of document.querySelectorAll("nav details > summary")) {
      if (summary.textContent.trim() === "" && !summary.hasAttribute("aria-label")) {
        const link = summary.closest("li")?.querySelector(":scope > a");
        const section = link ? link.textContent.trim() : "this section";
        summary.setAttribute("aria-label", `Pages in ${section}`);
      }
    }
  };

  /* 3. Search results: Sphinx quotes the page's text around the match, and inline math is raw
   * TeX there (`\(\sqrt{d_k}\)`) because MathJax typesets only the open page. Turn the TeX of
   * the quoted page into plain text before Sphinx cuts its snippet. */
  const GREEK = {
    alpha: "α", beta: "β", gamma: "γ", delta: "δ", epsilon: "ε", varepsilon: "ε", theta: "θ",
    lambda: "λ", mu: "μ", pi: "π", sigma: "σ", tau: "τ", phi: "φ", omega: "ω", Sigma: "Σ",
    Delta: "Δ", Omega: "Ω",
  };
  const SYMBOLS = {
    cdot: "·", times: "×", le: "≤", leq: "≤", ge: "≥", geq: "≥", neq: "≠", approx: "≈",
    in: "∈", to: "→", rightarrow: "→", leftarrow: "←", infty: "∞", sum: "Σ", prod: "Π",
    top: "ᵀ", ldots: "…", dots: "…", cdots: "⋯", quad: " ", qquad: " ", odot: "⊙",
    sqrt: "√", mid: "|", lvert: "|", rvert: "|", langle: "⟨", rangle: "⟩",
  };
  const SUPERSCRIPTS = { "0": "⁰", "1": "¹", "2": "²", "3": "³", "4": "⁴", "T": "ᵀ", "n": "ⁿ" };
  const texToText = (tex) => {
    let text = tex.trim()
      .replace(/^\\\(|\\\)$/g, "").replace(/^\\\[|\\\]$/g, "").replace(/^\$+|\$+$/g, "");
    for (let i = 0; i < 4; i++) {  // nested groups, innermost first
      text = text
        .replace(/\\(?:mathrm|mathbf|mathit|mathcal|mathbb|boldsymbol|text|textrm|textbf|operatorname)\s*\{([^{}]*)\}/g, "$1")
        .replace(/\\frac\s*\{([^{}]*)\}\s*\{([^{}]*)\}/g, "($1)/($2)")
        .replace(/\\sqrt\s*\{([^{}]*)\}/g, "√($1)")
        .replace(/\^\{([^{}]*)\}/g, (_, sup) => (SUPERSCRIPTS[sup] ?? `^(${sup})`))
        .replace(/_\{([^{}]*)\}/g, "_$1");
    }
    return text
      .replace(/\^([0-9Tn])/g, (_, sup) => SUPERSCRIPTS[sup])
      .replace(/\\(left|right|big|Big|bigg|Bigg)\b/g, "")
      .replace(/\\([A-Za-z]+)/g, (_, name) => GREEK[name] ?? SYMBOLS[name] ?? name)
      .replace(/\\[,;:! ]/g, " ")
      .replace(/[{}]/g, "")
      .replace(/\s+/g, " ")
      .trim();
  };
  const readableSearchSnippets = () => {
    if (typeof Search === "undefined" || typeof Search.htmlToText !== "function" ||
        Search.htmlToText.courseText) {
      return;
    }
    const htmlToText = Search.htmlToText;
    Search.htmlToText = (htmlString, anchor) => {
      const page = new DOMParser().parseFromString(htmlString, "text/html");
      for (const math of page.querySelectorAll(".math")) {
        math.textContent = ` ${texToText(math.textContent)} `;
      }
      return htmlToText(page.documentElement.outerHTML, anchor);
    };
    Search.htmlToText.courseText = true;
  };

  /* 4. Inline math wider than its line gets a scroll box of its own (course.css), so a long
   * formula never widens the page on a phone. MathJax typesets after the page has loaded. */
  const markWideMath = () => {
    for (const math of document.querySelectorAll(".bd-article mjx-container:not([display='true'])")) {
      const line = math.parentElement;
      if (line && math.getBoundingClientRect().width > line.getBoundingClientRect().width) {
        math.classList.add("course-wide-math");
      }
    }
  };
  const afterMathJax = () => {
    const startup = window.MathJax && window.MathJax.startup;
    if (startup && startup.promise) {
      startup.promise.then(markWideMath);
    }
  };

  readableSearchSnippets();
  onReady(() => {
    forwardSidebarToggles();
    fixAccessibleNames();
    readableSearchSnippets();
  });
  window.addEventListener("load", afterMathJax);
  window.addEventListener("resize", markWideMath);
})();

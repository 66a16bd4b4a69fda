"""Look of the page: a theme that uses only system fonts (no Google Fonts, no CDN) and the app's CSS."""

from __future__ import annotations

import gradio as gr

SYSTEM_SANS = ("ui-sans-serif", "system-ui", "-apple-system", "Segoe UI", "Helvetica", "Arial", "sans-serif")
SYSTEM_MONO = ("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "monospace")


def offline_theme() -> gr.themes.Base:
    """gradio's default look with system font stacks: plain strings make gradio emit no font URL.

    >>> offline_theme()._stylesheets
    []
    """
    return gr.themes.Default(
        primary_hue="blue", neutral_hue="slate", font=list(SYSTEM_SANS), font_mono=list(SYSTEM_MONO)
    )


CSS = """
.sim-banner {background:#fff4d6; border:2px solid #d99a00; color:#4a3500; padding:10px 14px;
  border-radius:8px; font-size:15px;}
.chk {margin-top:10px; font-size:0.92em;}
.chk-table {border-collapse:collapse; margin-top:4px;}
.chk-table td, .chk-table th {border:1px solid var(--border-color-primary); padding:2px 6px; text-align:left;}
.ev-list {display:flex; flex-direction:column; gap:10px;}
.ev-card {border:1px solid var(--border-color-primary); border-radius:8px; padding:8px 12px;
  background:var(--background-fill-secondary);}
.ev-card p {margin:4px 0; line-height:1.45;}
.ev-head {display:flex; align-items:center; gap:10px; flex-wrap:wrap; font-size:14px;}
.ev-rank {font-weight:700;}
.ev-id {font-family:var(--font-mono);}
.ev-bar {display:inline-block; width:120px; height:8px; background:#dde3ea; border-radius:4px; overflow:hidden;}
.ev-bar span {display:block; height:100%; background:#2f6fdf;}
.ev-used {color:var(--body-text-color-subdued);}
.ev-card mark {background:#ffe58a; color:inherit; padding:0 2px; border-radius:3px;}
.ev-empty {color:var(--body-text-color-subdued); padding:8px;}
.ev-agree {font-size:13px; padding:1px 6px; border-radius:4px; background:#eef2f8; color:#23406e;}
.obs-legend {font-size:12px; color:var(--body-text-color-subdued); margin-bottom:6px;}
.obs-note {font-size:12px; color:var(--body-text-color-subdued); margin-top:6px;}
.obs-grid {display:grid; grid-template-columns:repeat(auto-fill, minmax(270px, 1fr)); gap:6px 14px;}
.obs-row {display:grid; grid-template-columns:minmax(0, 1fr) 112px; gap:8px; align-items:center;}
.pred {display:flex; align-items:center; gap:5px; font-size:12px; font-variant-numeric:tabular-nums;}
.pred-bar {display:inline-block; width:52px; height:7px; background:#dde3ea; border-radius:4px; overflow:hidden;}
.pred-bar span {display:block; height:100%; background:#8a94a6;}
.pred-on .pred-bar span {background:#d9534f;}
.pred-on b {color:#b52b27;}
.pred i {font-style:normal; color:#d9534f;}
.pred-na {color:var(--body-text-color-subdued);}
.obs {display:flex; flex-direction:column; border-radius:6px; padding:4px 8px; font-size:13px; border:1px solid;}
.obs small {font-size:11px; opacity:0.85;}
.obs-pos {background:#fde2e1; border-color:#d9534f; color:#7a1f1c;}
.obs-neg {background:#e3f4e6; border-color:#4c9a5a; color:#1f5a2a;}
.obs-unc {background:#fff1d6; border-color:#d99a00; color:#5c4100;}
.obs-nm {background:transparent; border-color:var(--border-color-primary); color:var(--body-text-color-subdued);}
#draft textarea {font-family:var(--font-mono); font-size:14px;}
"""

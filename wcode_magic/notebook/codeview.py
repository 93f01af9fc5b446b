"""The panel's "Show code" as HTML: each code block of ``codegen.show`` with Copy and "Insert as a new cell".

``codegen`` stays the one source of the code text; this module only lays its Markdown out as HTML with two
buttons per block. An ipywidgets HTML widget sets its value as innerHTML, so inline ``onclick`` handlers run
(``<script>`` would not); the code is read back from the block's own ``<pre>``, so no code is ever quoted
into JavaScript.

- Copy: ``navigator.clipboard.writeText`` (127.0.0.1 and https are secure contexts, where it is allowed).
- Insert: JupyterLab 4 exposes ``window.jupyterapp`` only when started with ``--LabApp.expose_app_in_browser``
  (or in dev mode; grep ``exposeAppInBrowser`` in its static bundle). When it is there, the command
  ``notebook:insert-cell-below`` runs and the new cell's source is set through its model. Otherwise the button
  does what a person would: a press on the panel's own cell prompt makes that cell the active one, a press on
  the notebook toolbar's "Insert a cell below" button (``data-command="notebook:insert-cell-below"``; its
  component acts on mousedown, not click) adds the cell, and the code is pasted into the new cell's editor (a
  ``paste`` event carrying the text, which CodeMirror 6 reads). Outside
  JupyterLab (classic, VS Code) the button says to use Copy instead.
"""

from __future__ import annotations

import html
import re

_COPY = """(function(b){
var t=b.closest('.wm-code-block').querySelector('pre').textContent;
var done=function(w){b.textContent=w;setTimeout(function(){b.textContent='Copy';},1500);};
if(!navigator.clipboard){done('Copy needs https or 127.0.0.1');return;}
navigator.clipboard.writeText(t).then(function(){done('Copied');},function(e){done('Copy failed: '+e.name);});
})(this)"""

_INSERT = """(function(b){
var code=b.closest('.wm-code-block').querySelector('pre').textContent.replace(/\\n$/,'');
var say=function(w){b.textContent=w;setTimeout(function(){b.textContent='Insert as a new cell';},2500);};
var app=window.jupyterapp;
if(app&&app.commands&&app.commands.hasCommand('notebook:insert-cell-below')){
 app.commands.execute('notebook:insert-cell-below').then(function(){
  app.shell.currentWidget.content.activeCell.model.sharedModel.setSource(code);say('Inserted');});
 return;}
var nb=b.closest('.jp-NotebookPanel');var own=b.closest('.jp-Cell');
var btn=nb&&nb.querySelector('.jp-NotebookPanel-toolbar [data-command="notebook:insert-cell-below"]');
if(!btn||!own){say('Insert works in JupyterLab: use Copy');return;}
var press=function(e){e.dispatchEvent(new MouseEvent('mousedown',{bubbles:true,cancelable:true,button:0}));};
press(own.querySelector('.jp-InputPrompt')||own);
press(btn);
var tries=0;(function paste(){
 var ed=nb.querySelector('.jp-Notebook .jp-Cell.jp-mod-active .cm-content');
 var cell=ed&&ed.closest('.jp-Cell');
 if(!ed||cell.contains(b)||cell.querySelector('.cm-line').textContent!==''){
  if(++tries<50){setTimeout(paste,20);}else{say('Insert failed: use Copy');}return;}
 var data=new DataTransfer();data.setData('text/plain',code);
 ed.focus();ed.dispatchEvent(new ClipboardEvent('paste',{clipboardData:data,bubbles:true,cancelable:true}));
 say('Inserted');})();
})(this)"""

_BUTTON = "<button class='jupyter-button wm-{cls}' title='{title}' onclick=\"{js}\">{label}</button>"
_FENCE = re.compile(r"```[^\n]*\n(.*?)\n```", re.S)


def _buttons() -> str:
    copy = _BUTTON.format(cls="copy", title="Copy this code to the clipboard", js=html.escape(_COPY), label="Copy")
    insert = _BUTTON.format(
        cls="insert",
        title="Add a cell below the panel holding this code",
        js=html.escape(_INSERT),
        label="Insert as a new cell",
    )
    return f"<div class='wm-code-bar'>{copy} {insert}</div>"


def _note(text: str) -> str:
    """A note line of ``codegen.notes``: text with `code` spans."""
    parts = text.split("`")
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p) for i, p in enumerate(parts))


def render(markdown: str) -> str:
    """``codegen.show``'s Markdown (code fences, then "- " notes) as HTML with Copy / Insert on each block."""
    out: list[str] = []
    pos = 0
    for m in _FENCE.finditer(markdown):
        out += _notes(markdown[pos : m.start()])
        code = html.escape(m.group(1))
        out.append(
            f"<div class='wm-code-block'>{_buttons()}"
            f"<pre class='wm-code-text' style='white-space:pre-wrap;overflow-wrap:anywhere;margin:2px 0 8px'>"
            f"{code}</pre></div>"
        )
        pos = m.end()
    out += _notes(markdown[pos:])
    # overflow-wrap:anywhere: a long URL or JSON token wraps instead of widening the panel past a narrow cell.
    return f"<div class='wm-code-view' style='overflow-wrap:anywhere;max-width:100%'>{''.join(out)}</div>"


def _notes(text: str) -> list[str]:
    items = [line[2:] for line in text.splitlines() if line.startswith("- ")]
    if not items:
        return []
    return ["<ul class='wm-code-notes'>" + "".join(f"<li>{_note(i)}</li>" for i in items) + "</ul>"]

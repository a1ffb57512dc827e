// Browser side of "Copy link" (app/pages/share.py): the clipboard where the browser allows it
// (https or this machine), else a selectable copy of the link in a prompt. Arguments: label
// (the button's label, restored after "Link copied"); ``source`` is the button's model.
const url = window.location.href;
// ``source`` is the button's model (``cb_obj`` is the click event, which has no label)
const done = () => { source.label = "Link copied"; setTimeout(() => { source.label = label; }, 2000); };
const ask = () => window.prompt("Copy this link:", url);
if (navigator.clipboard && window.isSecureContext) {
  navigator.clipboard.writeText(url).then(done, ask);
} else { ask(); }

// In-app dialogs: a confirmation that replaces window.confirm(), and a
// focus trap that keeps Tab and Shift+Tab inside any open modal dialog.
import { h } from './dom.js';

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]):not([type="hidden"]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

function focusables(root) {
  return [...root.querySelectorAll(FOCUSABLE)].filter((el) => !el.closest('[hidden]') && el.getClientRects().length > 0);
}

/** Keeps keyboard focus inside dlg while it is open: Tab from the last
 * control goes to the first, Shift+Tab from the first to the last. */
export function trapFocus(dlg) {
  if (dlg.dataset.trapped) return;
  dlg.dataset.trapped = '1';
  dlg.addEventListener('keydown', (e) => {
    if (e.key !== 'Tab' || !dlg.open) return;
    const items = focusables(dlg);
    if (!items.length) { e.preventDefault(); return; }
    const first = items[0], last = items[items.length - 1];
    const active = document.activeElement;
    if (e.shiftKey && (active === first || !dlg.contains(active))) { e.preventDefault(); last.focus(); }
    else if (!e.shiftKey && (active === last || !dlg.contains(active))) { e.preventDefault(); first.focus(); }
  });
}

/** Traps focus in every <dialog> of the page. */
export function trapAllDialogs(root = document) {
  for (const d of root.querySelectorAll('dialog')) trapFocus(d);
}

/**
 * Asks a yes/no question in a modal dialog. Resolves true when the person
 * confirms, false on Cancel, Escape or a click outside. Focus starts on
 * Cancel (the safe choice) and returns to where it was.
 */
export function confirmDialog({ title, body = '', confirm = 'OK', cancel = 'Cancel', danger = false }) {
  const back = document.activeElement;
  return new Promise((resolve) => {
    const titleId = 'confirm-title-' + Math.random().toString(36).slice(2);
    const ok = h('button', { type: 'button', class: danger ? 'primary danger-fill' : 'primary', dataset: { role: 'confirm' } }, confirm);
    const no = h('button', { type: 'button', dataset: { role: 'cancel' } }, cancel);
    const dlg = h('dialog', { class: 'confirm-dialog', 'aria-labelledby': titleId, role: 'alertdialog' },
      h('div', { class: 'stack' },
        h('h2', { id: titleId }, title),
        body ? h('p', { class: 'confirm-body' }, body) : null,
        h('div', { class: 'dialog-buttons' }, no, ok)));
    let answered = false;
    const finish = (yes) => {
      if (answered) return;
      answered = true;
      if (dlg.open) dlg.close();
      dlg.remove();
      if (back && back.isConnected && typeof back.focus === 'function') back.focus();
      resolve(yes);
    };
    ok.addEventListener('click', () => finish(true));
    no.addEventListener('click', () => finish(false));
    dlg.addEventListener('cancel', (e) => { e.preventDefault(); finish(false); });
    dlg.addEventListener('click', (e) => { // a click on the backdrop
      const r = dlg.getBoundingClientRect();
      if (e.target === dlg && (e.clientX < r.left || e.clientX > r.right || e.clientY < r.top || e.clientY > r.bottom)) finish(false);
    });
    trapFocus(dlg);
    document.body.append(dlg);
    dlg.showModal();
    no.focus();
  });
}

/**
 * The toolbars above the transcript: the session picker with New and Delete,
 * the model and permission-mode pickers, and the context meter. Each control
 * posts its change to the extension; the extension's `sessions`, `settings`
 * and `meter` messages set them.
 */

import {
  PERMISSION_MODES,
  type Meter,
  type PermissionMode,
  type SessionSettings,
  type SessionSummary,
} from '../shared/messages';
import { required, type Post } from './dom';

const MODE_LABELS: Record<PermissionMode, string> = {
  default: 'Ask before changes',
  acceptEdits: 'Accept edits',
  plan: 'Plan only',
  bypassPermissions: 'Bypass permissions',
};
/** The model picker's choices besides the session's own ("" is the backend's default). */
export const MODEL_CHOICES: ReadonlyArray<[string, string]> = [
  ['', 'Default model'],
  ['sonnet', 'Sonnet'],
  ['opus', 'Opus'],
  ['haiku', 'Haiku'],
];

export class Toolbar {
  private activeSessionId: string | undefined;
  private readonly sessionSelect: HTMLSelectElement;
  private readonly deleteButton: HTMLButtonElement;
  private readonly modelSelect: HTMLSelectElement;
  private readonly modeSelect: HTMLSelectElement;
  private readonly meterBox: HTMLElement;

  constructor(
    private readonly doc: Document,
    post: Post,
  ) {
    this.sessionSelect = required(doc, '#session-select');
    this.deleteButton = required(doc, '#delete-session');
    const newButton = required<HTMLButtonElement>(doc, '#new-session');
    this.modelSelect = required(doc, '#model-select');
    this.modeSelect = required(doc, '#mode-select');
    this.meterBox = required(doc, '#meter');

    this.modelSelect.append(...MODEL_CHOICES.map(([value, label]) => this.option(value, label)));
    this.modeSelect.append(...PERMISSION_MODES.map((mode) => this.option(mode, MODE_LABELS[mode])));
    this.modelSelect.addEventListener('change', () => post({ type: 'setModel', model: this.modelSelect.value }));
    this.modeSelect.addEventListener('change', () => post({ type: 'setPermissionMode', mode: this.modeSelect.value as PermissionMode }));
    newButton.addEventListener('click', () => post({ type: 'newSession' }));
    this.deleteButton.addEventListener('click', () => {
      if (this.activeSessionId !== undefined) post({ type: 'deleteSession', sessionId: this.activeSessionId });
    });
    this.sessionSelect.addEventListener('change', () => {
      const id = this.sessionSelect.value;
      if (id !== '' && id !== this.activeSessionId) post({ type: 'switchSession', sessionId: id });
    });
  }

  setSessions(sessions: SessionSummary[], activeSessionId: string | undefined): void {
    this.activeSessionId = activeSessionId;
    const options = sessions.map((s) => {
      const option = this.doc.createElement('option');
      option.value = s.id;
      option.textContent = `${s.title}${s.busy ? ' (working)' : ''}${s.resumed ? ' (resumed)' : ''}`;
      option.selected = s.id === activeSessionId;
      return option;
    });
    if (options.length === 0) {
      // Not an empty dropdown: say there is nothing yet.
      const none = this.option('', 'No sessions yet');
      none.disabled = true;
      none.selected = true;
      options.push(none);
    }
    this.sessionSelect.replaceChildren(...options);
    if (activeSessionId !== undefined) this.sessionSelect.value = activeSessionId;
    this.deleteButton.disabled = activeSessionId === undefined;
  }

  setSettings(settings: SessionSettings): void {
    if (![...this.modelSelect.options].some((o) => o.value === settings.model)) {
      this.modelSelect.append(this.option(settings.model, settings.model));
    }
    this.modelSelect.value = settings.model;
    this.modeSelect.value = settings.permissionMode;
  }

  setMeter(meter: Meter | undefined): void {
    const text = meterText(meter);
    this.meterBox.hidden = text === '';
    const bar = this.meterBox.querySelector('meter');
    const tokens = meter?.contextTokens;
    const window = meter?.contextWindow;
    if (bar !== null) {
      bar.hidden = tokens === undefined || window === undefined || window <= 0;
      bar.value = tokens !== undefined && window !== undefined && window > 0 ? Math.min(1, tokens / window) : 0;
    }
    const label = this.meterBox.querySelector('#meter-text');
    if (label !== null) label.textContent = text;
    this.meterBox.title =
      tokens !== undefined
        ? `The conversation is ${tokens.toLocaleString('en')} tokens${window !== undefined ? ` of the model's ${window.toLocaleString('en')}` : ''}`
        : '';
  }

  private option(value: string, label: string): HTMLOptionElement {
    const option = this.doc.createElement('option');
    option.value = value;
    option.textContent = label;
    return option;
  }
}

/** "Context 12% of 200k · $0.0123", or "" when nothing is known yet. */
export function meterText(meter: Meter | undefined): string {
  if (meter === undefined) return '';
  const parts: string[] = [];
  const { contextTokens: tokens, contextWindow: window, costUsd } = meter;
  if (tokens !== undefined && window !== undefined && window > 0) {
    parts.push(`Context ${Math.round((tokens / window) * 100)}% of ${compact(window)}`);
  } else if (tokens !== undefined) {
    parts.push(`Context ${compact(tokens)} tokens`);
  }
  if (costUsd !== undefined) parts.push(`$${costUsd < 0.01 ? costUsd.toFixed(4) : costUsd.toFixed(2)}`);
  return parts.join(' · ');
}

function compact(n: number): string {
  if (n >= 1_000_000) return `${Math.round(n / 100_000) / 10}M`;
  if (n >= 1000) return `${Math.round(n / 1000)}k`;
  return String(n);
}

/**
 * The chat view's HTML shell: the static elements the ChatApp fills in, and the
 * Content-Security-Policy around them. Shared by the extension (which fills in
 * the webview URIs and a nonce) and the jsdom tests.
 */

export interface ShellOptions {
  /** `webview.cspSource`. */
  cspSource: string;
  nonce: string;
  scriptUri: string;
  styleUri: string;
}

/** No remote resources, no inline script or style, no eval. */
export function contentSecurityPolicy(cspSource: string, nonce: string): string {
  return [
    "default-src 'none'",
    `style-src ${cspSource}`,
    `script-src 'nonce-${nonce}'`,
    `font-src ${cspSource}`,
    `img-src ${cspSource} data:`,
    "connect-src 'none'",
    "frame-src 'none'",
    "form-action 'none'",
    "base-uri 'none'",
  ].join('; ');
}

export const SHELL_BODY = `
<main id="app">
  <div class="toolbar" role="toolbar" aria-label="Sessions">
    <select id="session-select" aria-label="Session"></select>
    <button id="new-session" type="button">New session</button>
    <button id="delete-session" type="button">Delete session</button>
  </div>
  <div class="toolbar pickers" role="toolbar" aria-label="Session settings">
    <select id="model-select" aria-label="Model" title="The model of this session"></select>
    <select id="mode-select" aria-label="Permission mode" title="How Dave asks before it runs tools"></select>
    <span id="meter" class="meter" hidden><meter id="context-meter" min="0" max="1" value="0" aria-label="Context used"></meter><span id="meter-text"></span></span>
  </div>
  <div id="transcript" role="log" aria-live="polite" aria-relevant="additions text" aria-label="Conversation with Dave" tabindex="0"></div>
  <div id="status" role="status" aria-live="polite"></div>
  <div id="queue" class="queue" role="list" aria-label="Queued prompts" hidden></div>
  <form id="composer">
    <div id="chips" class="chips" role="list" aria-label="Context for the next message" hidden></div>
    <div id="attachments" class="attachments" role="list" aria-label="Attached images" hidden></div>
    <ul id="completions" class="completions" role="listbox" aria-label="Suggestions" hidden></ul>
    <textarea id="message" rows="3" aria-label="Message Dave" aria-autocomplete="list" aria-controls="completions" placeholder="Ask Dave (Enter sends, Shift+Enter: new line, @ file, / command)"></textarea>
    <div class="composer-buttons">
      <button id="send" type="submit">Send</button>
      <button id="queue-send" type="button" class="secondary" title="Send this after the running answer (Ctrl+Enter)" hidden>Queue</button>
      <button id="stop" type="button" title="Stop the answer (Escape)" hidden>Stop</button>
    </div>
  </form>
</main>`;

export function shellHtml(options: ShellOptions): string {
  const csp = contentSecurityPolicy(options.cspSource, options.nonce);
  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<link rel="stylesheet" href="${options.styleUri}">
<title>Dave</title>
</head>
<body>${SHELL_BODY}
<script nonce="${options.nonce}" src="${options.scriptUri}"></script>
</body>
</html>`;
}

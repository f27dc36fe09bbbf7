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
  <div id="transcript" role="log" aria-live="polite" aria-relevant="additions text" aria-label="Conversation with Dave" tabindex="0"></div>
  <div id="status" role="status" aria-live="polite"></div>
  <form id="composer">
    <textarea id="message" rows="3" aria-label="Message Dave" placeholder="Ask Dave (Enter to send, Shift+Enter for a new line)"></textarea>
    <div class="composer-buttons">
      <button id="send" type="submit">Send</button>
      <button id="stop" type="button" hidden>Stop</button>
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

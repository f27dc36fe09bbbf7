/**
 * Markdown to safe HTML for the chat transcript.
 *
 * Model text is untrusted. Two layers keep it inert: the markdown renderer
 * never passes raw HTML through (it is shown as text), turns images into plain
 * links (no remote resources) and drops links that are not http(s) or mailto;
 * then DOMPurify removes anything executable that slipped past. The webview's
 * Content-Security-Policy is the third layer.
 */

import createDOMPurify, { type DOMPurify } from 'dompurify';
import hljs from 'highlight.js/lib/core';
import bash from 'highlight.js/lib/languages/bash';
import c from 'highlight.js/lib/languages/c';
import cpp from 'highlight.js/lib/languages/cpp';
import css from 'highlight.js/lib/languages/css';
import diff from 'highlight.js/lib/languages/diff';
import go from 'highlight.js/lib/languages/go';
import java from 'highlight.js/lib/languages/java';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import lua from 'highlight.js/lib/languages/lua';
import markdown from 'highlight.js/lib/languages/markdown';
import python from 'highlight.js/lib/languages/python';
import rust from 'highlight.js/lib/languages/rust';
import shell from 'highlight.js/lib/languages/shell';
import sql from 'highlight.js/lib/languages/sql';
import typescript from 'highlight.js/lib/languages/typescript';
import xml from 'highlight.js/lib/languages/xml';
import yaml from 'highlight.js/lib/languages/yaml';
import { Marked, type Tokens } from 'marked';

const languages = {
  bash,
  c,
  cpp,
  css,
  diff,
  go,
  java,
  javascript,
  json,
  lua,
  markdown,
  python,
  rust,
  shell,
  sql,
  typescript,
  xml,
  yaml,
};
for (const [name, language] of Object.entries(languages)) hljs.registerLanguage(name, language);
hljs.registerAliases(['js', 'jsx', 'mjs', 'cjs'], { languageName: 'javascript' });
hljs.registerAliases(['ts', 'tsx'], { languageName: 'typescript' });
hljs.registerAliases(['py'], { languageName: 'python' });
hljs.registerAliases(['sh', 'zsh', 'console'], { languageName: 'bash' });
hljs.registerAliases(['html', 'svg'], { languageName: 'xml' });
hljs.registerAliases(['yml'], { languageName: 'yaml' });
hljs.registerAliases(['rs'], { languageName: 'rust' });

export function escapeHtml(text: string): string {
  return text
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const SAFE_URL = /^(https?:|mailto:)/i;

function highlight(code: string, lang: string | undefined): string {
  const name = (lang ?? '').trim().split(/\s+/)[0]?.toLowerCase() ?? '';
  if (name !== '' && hljs.getLanguage(name) !== undefined) {
    try {
      return hljs.highlight(code, { language: name, ignoreIllegals: true }).value;
    } catch {
      // Fall through to plain text.
    }
  }
  return escapeHtml(code);
}

function createMarked(): Marked {
  return new Marked({
    gfm: true,
    breaks: false,
    async: false,
    renderer: {
      html({ text }: Tokens.HTML | Tokens.Tag): string {
        return escapeHtml(text);
      },
      code({ text, lang }: Tokens.Code): string {
        const name = (lang ?? '').trim().split(/\s+/)[0] ?? '';
        const label = name !== '' ? ` data-lang="${escapeHtml(name)}"` : '';
        // The whole info string: Apply reads a file name from it (```python title=greet.py).
        const info = (lang ?? '').trim() !== '' ? ` data-info="${escapeHtml((lang ?? '').trim())}"` : '';
        const cls = name !== '' ? ` class="hljs language-${escapeHtml(name.replace(/[^\w-]/g, ''))}"` : ' class="hljs"';
        return `<pre${label}${info}><code${cls}>${highlight(text, lang)}</code></pre>\n`;
      },
      image({ href, text }: Tokens.Image): string {
        // No remote resources: an image becomes a link to it.
        const alt = escapeHtml(text || href);
        return SAFE_URL.test(href) ? `<a href="${escapeHtml(href)}">${alt}</a>` : alt;
      },
      link(this: { parser: { parseInline(tokens: Tokens.Generic[]): string } }, token: Tokens.Link): string {
        const inner = this.parser.parseInline(token.tokens);
        if (!SAFE_URL.test(token.href)) return inner;
        const title = token.title ? ` title="${escapeHtml(token.title)}"` : '';
        return `<a href="${escapeHtml(token.href)}"${title}>${inner}</a>`;
      },
    },
  });
}

const PURIFY_CONFIG = {
  FORBID_TAGS: ['style', 'img', 'svg', 'math', 'form', 'input', 'button', 'textarea', 'select', 'iframe', 'object', 'embed', 'video', 'audio', 'source', 'picture', 'link', 'meta', 'base'],
  FORBID_ATTR: ['style', 'srcset', 'action', 'formaction'],
  ALLOWED_URI_REGEXP: /^(?:https?:|mailto:)/i,
};

export interface MarkdownRenderer {
  /** Markdown to sanitized HTML, safe for innerHTML. */
  render(markdown: string): string;
}

/** `window` is the webview's, or a jsdom window in tests. */
export function createMarkdownRenderer(window: Window): MarkdownRenderer {
  const purify: DOMPurify = createDOMPurify(window as unknown as Parameters<typeof createDOMPurify>[0]);
  // Links open outside the webview; never let them target the opener.
  purify.addHook('afterSanitizeAttributes', (node) => {
    if (node.tagName === 'A') {
      node.setAttribute('rel', 'noopener noreferrer');
    }
  });
  const marked = createMarked();
  return {
    render(markdown: string): string {
      const html = marked.parse(markdown, { async: false });
      return purify.sanitize(html, PURIFY_CONFIG);
    },
  };
}

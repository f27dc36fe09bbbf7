"""What an ACP client sends, as the session layer takes it: a prompt's content blocks
(text, images, links, embedded resources) and the client's MCP servers.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote, urlparse

from dave_lsp.acp.schema import acp
from dave_lsp.permissions.policy import client_server_name
from dave_lsp.rpc import AttachmentParam, ParamsError

log = logging.getLogger(__name__)


def additional_directories(method: str, folders: Sequence[str] | None) -> tuple[str, ...]:
    """ACP's `additionalDirectories`: the session's extra folders, each an absolute path
    to an existing folder (a ParamsError, -32602, says which is not)."""
    found: list[str] = []
    for folder in folders or ():
        if not os.path.isabs(folder):
            raise ParamsError(
                f"{method}: invalid params: additionalDirectories: {folder!r} is not an "
                "absolute path"
            )
        if not os.path.isdir(folder):
            raise ParamsError(
                f"{method}: invalid params: additionalDirectories: {folder} is not a folder"
            )
        normal = os.path.normpath(folder)
        if normal not in found:
            found.append(normal)
    return tuple(found)


def mcp_servers(servers: Sequence[Any]) -> dict[str, Any]:
    """The client's MCP servers in the Claude SDK's `McpServerConfig` shape, by name.
    A name the server's own tools use (`editor`, `acp`; permissions.OWNED_SERVER_NAMES)
    is not the client's to take: that server runs renamed (`editor-client`, so its tools
    are `mcp__editor-client__*`, asked as any client tool is), and the log says so."""
    configs: dict[str, Any] = {}
    for server in servers:
        name = client_server_name(server.name, configs)
        if name != server.name:
            log.warning(
                "the client's MCP server %r runs as %r: dave-lsp's own tools use that name;"
                " its tools are mcp__%s__<tool>",
                server.name,
                name,
                name,
            )
        if isinstance(server, acp.McpServerStdio):
            configs[name] = {
                "type": "stdio",
                "command": server.command,
                "args": list(server.args),
                "env": {e.name: e.value for e in server.env},
            }
        elif isinstance(server, acp.HttpMcpServer | acp.SseMcpServer):
            configs[name] = {
                "type": "http" if isinstance(server, acp.HttpMcpServer) else "sse",
                "url": server.url,
                "headers": {h.name: h.value for h in server.headers},
            }
        else:
            log.warning("ignoring MCP server %s: its transport is not supported", server.name)
    return configs


def prompt_content(blocks: Sequence[Any]) -> tuple[str, list[AttachmentParam]]:
    """A prompt's blocks as the session layer's prompt text and images. Text comes
    first as typed (so a slash command stays a slash command); links are `@path`
    mentions the model can read; embedded resources follow as context blocks.

    Each text block stays apart: blocks are joined with a blank line, so two blocks
    (codecompanion resends a stopped prompt as its own block before the new one) reach
    the model as two paragraphs, not one line. A link and the text either side of it
    stay on one line ("look at @/src/a.py and fix it", as Zed splits a mention out of
    a sentence). The session layer takes one prompt string for either
    backend, so Claude gets them as one text block of paragraphs."""
    parts: list[str] = []
    context: list[str] = []
    images: list[AttachmentParam] = []
    inline = False  # the last part ends with a link: the next text continues its line
    for block in blocks:
        if isinstance(block, acp.TextContentBlock):
            if block.text:
                _add(parts, block.text, inline)
                inline = False
        elif isinstance(block, acp.ImageContentBlock):
            images.append(AttachmentParam("image", block.mime_type, block.data))
        elif isinstance(block, acp.ResourceContentBlock):
            _add(parts, _mention(block.uri), inline=True)
            inline = True
        elif isinstance(block, acp.EmbeddedResourceContentBlock):
            resource = block.resource
            if isinstance(resource, acp.TextResourceContents):
                context.append(f'<context ref="{resource.uri}">\n{resource.text}\n</context>')
            else:
                context.append(f'<context ref="{resource.uri}">(binary, not shown)</context>')
        else:
            raise ParamsError(
                "session/prompt: invalid params: prompt: audio is not supported "
                "(promptCapabilities.audio is false)"
            )
    text = "\n\n".join(parts)
    if context:
        text = "\n\n".join([text, *context]) if text else "\n\n".join(context)
    return text, images


def _add(parts: list[str], text: str, inline: bool) -> None:
    """`text` as a paragraph of its own, or (`inline`) on the last one's line."""
    if inline and parts:
        last = parts[-1]
        joint = "" if last[-1:].isspace() or text[:1].isspace() else " "
        parts[-1] = f"{last}{joint}{text}"
    else:
        parts.append(text)


def _mention(uri: str) -> str:
    parsed = urlparse(uri)
    return f"@{unquote(parsed.path)}" if parsed.scheme == "file" else uri

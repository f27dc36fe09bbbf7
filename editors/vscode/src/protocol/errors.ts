/**
 * What an error from the connection is: its JSON-RPC code, its message in a
 * line, and whether it is a cancellation or the connection going away.
 */

export function errorCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === 'number' ? code : undefined;
}

export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'string') return error;
  const message = (error as { message?: unknown } | undefined)?.message;
  return typeof message === 'string' ? message : String(error);
}

export function isCancellation(error: unknown): boolean {
  const name = (error as { name?: unknown } | undefined)?.name;
  return name === 'Canceled' || name === 'CancellationError';
}

/** vscode-jsonrpc's codes for a connection that closed under a pending request. */
export function isConnectionGone(error: unknown): boolean {
  const code = errorCode(error);
  // PendingResponseRejected -32097, ConnectionInactive -32096
  return code === -32097 || code === -32096 || /connection (is|got) (closed|disposed)/i.test(errorMessage(error));
}

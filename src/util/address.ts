/**
 * Addresses as operators write them: `host:port` (IPv6 as `[::1]:26379`) and URLs whose password must
 * never be shown. No dependencies, so the config schema and a cron collect round can use it cheaply.
 */

/** `scheme://user:secret@host` -> `scheme://user:***@host`: URLs with credentials are shown only like this. */
export function redactUrl(text: string): string {
  return text.replace(/^([a-z][a-z0-9+.-]*:\/\/)([^@/]*)@/i, (_match, scheme: string, auth: string) => {
    const user = auth.includes(':') ? auth.slice(0, auth.indexOf(':')) : auth;
    return `${scheme}${user ? `${user}:` : ':'}***@`;
  });
}

export interface HostPort {
  host: string;
  port: number;
}

/**
 * `host:port`, `[v6]:port` -> { host, port } (brackets removed), or null when it is not one: no host,
 * or a port that is not a whole number from `minPort` to 65535.
 */
export function parseHostPort(text: string, minPort = 1): HostPort | null {
  const index = text.lastIndexOf(':');
  if (index <= 0) return null;
  const rawHost = text.slice(0, index);
  const portText = text.slice(index + 1);
  const bracketed = /^\[[^\]]+\]$/.test(rawHost);
  // An unbracketed host with a colon (a bare IPv6 address) is ambiguous: which colon starts the port?
  if (!bracketed && rawHost.includes(':')) return null;
  if (!/^\d{1,5}$/.test(portText)) return null;
  const port = Number(portText);
  if (port < minPort || port > 65535) return null;
  const host = bracketed ? rawHost.slice(1, -1) : rawHost;
  if (!host || /[\s/@]/.test(host)) return null;
  return { host, port };
}

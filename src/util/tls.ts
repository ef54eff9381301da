/**
 * TLS material named in the config: the cluster CA, this process's certificate and its private key
 * (PEM files made by deploy/certs.sh, or by any CA). Checked once at start, all problems at once:
 * each file readable and holding what it should, a private key no other user can read, the key
 * matching the certificate, the certificate signed by the CA and within its dates. Node's TLS and
 * QEMU's `tls-creds-x509` then read the same files. No dependencies beyond node:crypto and node:fs.
 */
import { X509Certificate, createPrivateKey, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import { isIP } from 'node:net';

/** The files, as the config names them (empty string: not given). */
export interface TlsFiles {
  ca?: string;
  cert?: string;
  key?: string;
}

/** Their contents, as node:tls takes them (`ca`, `cert`, `key` options). */
export interface TlsMaterial {
  ca?: string;
  cert?: string;
  key?: string;
}

/** OIDs of the extended key usages TLS checks. */
export const SERVER_AUTH = '1.3.6.1.5.5.7.3.1';
export const CLIENT_AUTH = '1.3.6.1.5.5.7.3.2';

function readText(file: string): { text: string } | { problem: string } {
  try {
    return { text: fs.readFileSync(file, 'utf8') };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'a folder, not a file'
            : (code ?? (error as Error).message);
    return { problem: why };
  }
}

/** Why a PEM file of certificates (a CA bundle, or a certificate with its chain) is unfit, or null. */
export function certificateFileProblem(file: string): string | null {
  const read = readText(file);
  if ('problem' in read) return `expected a readable PEM certificate file (${read.problem})`;
  const blocks = pemBlocks(read.text, 'CERTIFICATE');
  if (blocks.length === 0) return 'expected a PEM certificate file (-----BEGIN CERTIFICATE-----); none found in it';
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch (error) {
      return `expected a PEM certificate file; one of its certificates cannot be read (${(error as Error).message})`;
    }
  }
  return null;
}

/**
 * Why a private key file is unfit, or null: unreadable, not a PEM private key, or readable or
 * writable by users other than its owner and group (a group that must read it, such as the service's,
 * is fine: mode 0640).
 */
export function keyFileProblem(file: string): string | null {
  const read = readText(file);
  if ('problem' in read) return `expected a readable PEM private key file (${read.problem})`;
  const mode = fs.statSync(file).mode & 0o777;
  if (mode & 0o027)
    return (
      `expected a private key only its owner (and group) can read, mode 0600 or 0640; mode 0${mode.toString(8)} lets ` +
      `${mode & 0o007 ? 'every user' : 'its group'} ${mode & 0o004 ? 'read' : 'change'} it (chmod 600 ${file})`
    );
  try {
    createPrivateKey(read.text);
  } catch (error) {
    return `expected a PEM private key file; it cannot be read (${(error as Error).message})`;
  }
  return null;
}

function pemBlocks(text: string, label: string): string[] {
  const pattern = new RegExp(`-----BEGIN ${label}-----[\\s\\S]*?-----END ${label}-----`, 'g');
  return text.match(pattern) ?? [];
}

/**
 * Problems of a set of files taken together (each file already fit on its own): a certificate needs
 * its key and the CA; the key must be the certificate's; the certificate must be signed by one of
 * the CA file's certificates and valid now. Keyed by the field they belong to.
 */
export function identityProblems(files: TlsFiles, nowMs = Date.now()): { field: keyof TlsFiles; problem: string }[] {
  const problems: { field: keyof TlsFiles; problem: string }[] = [];
  if (files.cert && !files.key)
    problems.push({ field: 'key', problem: `expected the private key of the certificate ${files.cert} too` });
  if (files.key && !files.cert)
    problems.push({ field: 'cert', problem: `expected the certificate of the private key ${files.key} too` });
  if (files.cert && !files.ca)
    problems.push({
      field: 'ca',
      problem: 'expected the CA file too: the CA that signs every peer of this certificate',
    });
  if (!files.cert || !files.key || !files.ca || problems.length > 0) return problems;
  // Files unfit on their own are reported by themselves.
  if (certificateFileProblem(files.ca) || certificateFileProblem(files.cert) || keyFileProblem(files.key)) return [];
  const cert = new X509Certificate(fs.readFileSync(files.cert, 'utf8'));
  const key: KeyObject = createPrivateKey(fs.readFileSync(files.key, 'utf8'));
  if (!cert.checkPrivateKey(key))
    problems.push({
      field: 'key',
      problem: `expected the private key of the certificate ${files.cert} (${cert.subject.replace(/\n/g, ', ')}); this is another key`,
    });
  const cas = pemBlocks(fs.readFileSync(files.ca, 'utf8'), 'CERTIFICATE').map((pem) => new X509Certificate(pem));
  if (!cas.some((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey)))
    problems.push({
      field: 'cert',
      problem:
        `expected a certificate signed by the CA in ${files.ca}; its issuer is ${cert.issuer.replace(/\n/g, ', ')} ` +
        '(sign it with that CA: deploy/certs.sh)',
    });
  const from = Date.parse(cert.validFrom);
  const to = Date.parse(cert.validTo);
  if (nowMs < from)
    problems.push({ field: 'cert', problem: `expected a certificate valid now; it is valid from ${cert.validFrom}` });
  if (nowMs > to)
    problems.push({
      field: 'cert',
      problem: `expected a certificate valid now; it expired on ${cert.validTo} (renew it: deploy/certs.sh)`,
    });
  return problems;
}

/** Whether the certificate may be used for these purposes (extended key usage; none listed: any). */
export function certificateAllows(certFile: string, usages: string[]): boolean {
  const allowed = new X509Certificate(fs.readFileSync(certFile, 'utf8')).keyUsage;
  return !allowed || allowed.length === 0 || usages.every((usage) => allowed.includes(usage));
}

/** Whether the certificate names `host` (an IP address or a DNS name) in its subject alternative names. */
export function certificateNames(certFile: string, host: string): boolean {
  const cert = new X509Certificate(fs.readFileSync(certFile, 'utf8'));
  return isIP(host) ? cert.checkIP(host) !== undefined : cert.checkHost(host) !== undefined;
}

/** The files' contents for node:tls; unset ones left out. Read at each call (a renewal needs a restart). */
export function readTls(files: TlsFiles): TlsMaterial {
  const material: TlsMaterial = {};
  for (const field of ['ca', 'cert', 'key'] as const) {
    const file = files[field];
    if (file) material[field] = fs.readFileSync(file, 'utf8');
  }
  return material;
}

/**
 * Node's code for a TLS failure to verify the peer's certificate, in words an operator can act on,
 * or null when the error is not one (e.g. a refused connection).
 */
export function describeCertificateError(error: Error & { code?: string }): string | null {
  const code = error.code ?? '';
  const known: Record<string, string> = {
    SELF_SIGNED_CERT_IN_CHAIN: 'its certificate is signed by a CA this process does not trust',
    DEPTH_ZERO_SELF_SIGNED_CERT: 'its certificate is self-signed and not trusted',
    UNABLE_TO_VERIFY_LEAF_SIGNATURE: 'its certificate is signed by a CA this process does not trust',
    UNABLE_TO_GET_ISSUER_CERT_LOCALLY: 'its certificate is signed by a CA this process does not trust',
    CERT_HAS_EXPIRED: 'its certificate has expired',
    CERT_NOT_YET_VALID: 'its certificate is not valid yet',
    ERR_TLS_CERT_ALTNAME_INVALID: 'its certificate does not name the address it was reached at',
    CERT_SIGNATURE_FAILURE: 'its certificate signature does not verify',
  };
  if (known[code]) return `${known[code]} (${code}: ${error.message})`;
  if (/certificate|alert|handshake|SSL routines|tlsv1/i.test(error.message) && !/ECONNREFUSED/.test(error.message))
    return `the TLS handshake failed (${error.message})`;
  return null;
}

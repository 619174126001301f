// Which client certificates a TLS endpoint serves (authentication_ssl_client_certs):
// a listed certificate itself, one issued by a listed CA; not a stranger's,
// not an expired one, not none.
import 'reflect-metadata';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { clientCertAllowed, clientCertList } from '../../src/proxy/client-auth.js';
import { days, makeLeaf, makeRoot, rsaKeys } from '../support/pki-hierarchy.js';

test('a listed certificate, or one a listed CA issued, is served; others are not', async () => {
  const [caKeys, a, b, c, d, e] = await rsaKeys(6);
  const ca = await makeRoot('Clients CA', caKeys);
  const other = await makeRoot('Other CA', d);
  const byCa = await makeLeaf(ca, 'app', a);
  const selfSigned = await makeRoot('app-self', b);
  const leafOfOther = await makeLeaf(other, 'listed-leaf', e);
  const stranger = await makeLeaf(other, 'stranger', c);
  const expired = await makeLeaf(ca, 'old', c, { notBefore: new Date(Date.now() - days(10)), notAfter: new Date(Date.now() - days(1)) });
  const list = clientCertList([ca.pem, selfSigned.pem, leafOfOther.pem]);
  const x = (p: string) => new X509Certificate(p);
  assert.equal(clientCertAllowed(list, x(byCa.pem), false), true, 'issued by a listed CA');
  assert.equal(clientCertAllowed(list, x(selfSigned.pem), false), true, 'listed itself (self-signed)');
  assert.equal(clientCertAllowed(list, x(leafOfOther.pem), false), true, 'listed itself, though its CA is not');
  assert.equal(clientCertAllowed(list, x(stranger.pem), false), false, 'issued by an unlisted CA');
  assert.equal(clientCertAllowed(list, x(expired.pem), true), false, 'expired, even if OpenSSL was given the chain');
  assert.equal(clientCertAllowed(list, undefined, false), false, 'no certificate');
});

// Independent check of a credential issued by the certification service, with Digital Bazaar's
// Data Integrity libraries (not written here): @digitalbazaar/vc verifies the eddsa-rdfc-2022 proof
// (@digitalbazaar/eddsa-rdfc-2022-cryptosuite, RDFC-1.0 by rdf-canonize) and the revocation status
// (@digitalbazaar/vc-bitstring-status-list, which verifies the status list credential too).
//
// Reads on stdin: {"credential": {...}, "documents": {"<url>": {...}}, "now"?: "<ISO date>"} where
// `documents` holds what a verifier would fetch over HTTP (the issuer's controller document, the status
// list credential), and `now` the time to verify at (the service's clock in tests; the real time if absent).
// JSON-LD contexts come from certification/contexts/ (the same bundled copies); nothing is fetched.
// A verification method URL `<document>#<fragment>` dereferences to the entry of that id in the
// document's `verificationMethod`, as a web resolver does. Prints {"verified": bool, "error": ...}.
import {readFileSync} from 'node:fs';
import {dirname, join} from 'node:path';
import {fileURLToPath} from 'node:url';

import * as vc from '@digitalbazaar/vc';
import {DataIntegrityProof} from '@digitalbazaar/data-integrity';
import {cryptosuite as eddsaRdfc2022CryptoSuite} from '@digitalbazaar/eddsa-rdfc-2022-cryptosuite';
import {checkStatus} from '@digitalbazaar/vc-bitstring-status-list';

const here = dirname(fileURLToPath(import.meta.url));
const contextsFolder = join(here, '..', '..', 'certification', 'contexts');
const CONTEXTS = {
  'https://www.w3.org/ns/credentials/v2': 'credentials-v2.jsonld',
  'https://purl.imsglobal.org/spec/ob/v3p0/context-3.0.3.json': 'ob-context-3.0.3.json',
  'https://w3id.org/security/data-integrity/v2': 'data-integrity-v2.jsonld',
  'https://w3id.org/security/multikey/v1': 'multikey-v1.jsonld',
  'https://www.w3.org/ns/did/v1': 'did-v1.jsonld',
};

const input = JSON.parse(readFileSync(0, 'utf8'));
const documents = input.documents || {};

async function documentLoader(url) {
  if(CONTEXTS[url]) {
    const document = JSON.parse(readFileSync(join(contextsFolder, CONTEXTS[url]), 'utf8'));
    return {contextUrl: null, documentUrl: url, document};
  }
  const [base, fragment] = url.split('#');
  if(fragment !== undefined && documents[base]) {
    const method = (documents[base].verificationMethod || []).find(m => m.id === url);
    if(method) {
      return {
        contextUrl: null, documentUrl: url,
        document: {'@context': 'https://w3id.org/security/multikey/v1', ...method}
      };
    }
  }
  if(documents[url]) {
    return {contextUrl: null, documentUrl: url, document: documents[url]};
  }
  throw new Error(`not available offline: ${url}`);
}

const suite = new DataIntegrityProof({cryptosuite: eddsaRdfc2022CryptoSuite});
const now = input.now ? new Date(input.now) : undefined;

// The status list credential is verified as a credential first, at `now` (the status checker
// itself verifies at the real time), then the checker reads the bit.
async function checkStatusAt(options) {
  const statuses = [].concat(options.credential.credentialStatus || []);
  for(const status of statuses) {
    const {document: listCredential} = await documentLoader(status.statusListCredential);
    const listed = await vc.verifyCredential({credential: listCredential, suite, documentLoader, now});
    if(!listed.verified) {
      return {verified: false, error: new Error('status list credential not verified', {cause: listed.error})};
    }
  }
  return checkStatus({...options, suite, documentLoader, verifyBitstringStatusListCredential: false});
}

let result;
try {
  result = await vc.verifyCredential({
    credential: input.credential,
    suite,
    documentLoader,
    now,
    checkStatus: checkStatusAt,
  });
} catch(error) {
  result = {verified: false, error};
}
const describe = e => e && (e.message || String(e)) + (e.errors ? ': ' + e.errors.map(describe).join('; ') : '') +
  (e.cause ? ' (' + describe(e.cause) + ')' : '');
const errors = [];
if(result.error) errors.push(describe(result.error));
for(const r of result.results || []) if(r.error) errors.push(describe(r.error));
if(result.statusResult && result.statusResult.error) errors.push(describe(result.statusResult.error));
const statuses = result.statusResult ? (result.statusResult.results || []) : [];
process.stdout.write(JSON.stringify({
  verified: Boolean(result.verified),
  // A revoked credential still verifies (its proof holds): its status bit says it is revoked.
  revoked: statuses.some(r => r.status === true),
  errors,
}) + '\n');

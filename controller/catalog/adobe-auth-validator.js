/**
 * Homerun's stand-in for Adobe's `require-adobe-auth` validators
 * (/adobeio/shared-validators-v1/headless-v2 and .../app-registry): the first component of the
 * web sequence `aio app deploy` makes of a secured web action.
 *
 * It asks the Homerun API whether the request's bearer token may call the secured actions of
 * the namespace running the sequence (POST /api/v1/namespaces/{ns}/homerun/adobeAuth, with
 * that namespace's __OW_API_KEY; the controller decides, see controller/services/adobeauth.py).
 * Accepted: the params go on unchanged to the secured action. Refused: the sequence stops with
 * the web response `{statusCode, body: {error}}`, as Adobe's validators answer.
 */
const TIMEOUT_MS = 30000;
const UNAVAILABLE = 'cannot authorize request, reason: the validation service is unavailable';

function refuse(statusCode, error) {
  return { error: { statusCode, body: { error } } };
}

function header(params, name) {
  const headers = params.__ow_headers || {};
  const value = headers[name];
  return typeof value === 'string' ? value : null;
}

/**
 * Lets the request through to the secured action, or answers it with a refusal.
 * @param {object} params the web action's params (`__ow_headers` with lowercased keys, ...)
 */
async function main(params) {
  params = params || {};
  const host = (process.env.__OW_API_HOST || '').replace(/\/+$/, '');
  const key = process.env.__OW_API_KEY;
  const namespace = process.env.__OW_NAMESPACE;
  if (!host || !key || !namespace) {
    console.error('validator: __OW_API_HOST, __OW_API_KEY or __OW_NAMESPACE is not set');
    return refuse(503, UNAVAILABLE);
  }
  const url = `${host}/api/v1/namespaces/${encodeURIComponent(namespace)}/homerun/adobeAuth`;
  let verdict;
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: {
        authorization: 'Basic ' + Buffer.from(key).toString('base64'),
        'content-type': 'application/json',
      },
      body: JSON.stringify({
        authorization: header(params, 'authorization'),
        imsOrgId: header(params, 'x-gw-ims-org-id'),
      }),
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    if (!response.ok) {
      console.error(`validator: ${url} answered ${response.status}: ${await response.text()}`);
      return refuse(503, UNAVAILABLE);
    }
    verdict = await response.json();
  } catch (err) {
    console.error(`validator: ${url} failed: ${err && err.message}`);
    return refuse(503, UNAVAILABLE);
  }
  if (verdict && verdict.accepted === true) {
    return params;
  }
  const statusCode = Number.isInteger(verdict && verdict.statusCode) ? verdict.statusCode : 401;
  return refuse(statusCode, (verdict && verdict.error) || 'cannot authorize request');
}

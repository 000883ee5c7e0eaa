// Makes one call with the real `openwhisk` npm client and prints what it returned, as JSON.
//
//   node ow.js '{"call": "actions.invoke", "options": {"name": "hello", "blocking": true}}'
//
// The client is built as applications build it, from HOMERUN_APIHOST (http://127.0.0.1:PORT)
// and HOMERUN_AUTH (uuid:key), namespace `_`; a call may carry its own "auth" instead.
// In the options, {"$buffer": "<base64>"} stands for a Buffer (how zip actions are passed).
//
// Prints one line: {"ok": true, "value": <what the promise resolved to>} or, when it rejected,
// {"ok": false, "name", "message", "statusCode", "error", "isOpenWhiskError"}.
'use strict'

const openwhisk = require('openwhisk')
const OpenWhiskError = require('openwhisk/lib/openwhisk_error')

const asBuffer = (key, value) =>
  value && typeof value.$buffer === 'string' ? Buffer.from(value.$buffer, 'base64') : value

async function main () {
  const { call, options, auth } = JSON.parse(process.argv[2], asBuffer)
  const ow = openwhisk({
    apihost: process.env.HOMERUN_APIHOST,
    api_key: auth || process.env.HOMERUN_AUTH,
    namespace: '_'
  })
  const [resource, method] = call.split('.')
  if (!ow[resource] || typeof ow[resource][method] !== 'function') {
    throw new Error(`unknown call ${call}`)
  }
  try {
    const value = await ow[resource][method](options)
    return { ok: true, value: value === undefined ? null : value }
  } catch (err) {
    return {
      ok: false,
      name: err.name,
      message: err.message,
      statusCode: err.statusCode === undefined ? null : err.statusCode,
      error: err.error === undefined ? null : err.error,
      isOpenWhiskError: err instanceof OpenWhiskError
    }
  }
}

main().then(
  outcome => console.log(JSON.stringify(outcome)),
  err => {
    console.error(err.stack || String(err))
    process.exitCode = 2
  }
)

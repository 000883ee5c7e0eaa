// Behind `require-adobe-auth`: reached only through the validator, with the caller's headers.
async function main (params) {
  return { statusCode: 200, body: { secret: 42, org: params.__ow_headers['x-gw-ims-org-id'] || null } }
}

exports.main = main

// A web action: its package's and its own inputs, the query, and a log line.
async function main (params) {
  console.log(`hello: greeting ${params.name || 'world'}`)
  return {
    statusCode: 200,
    body: { greeting: `${params.GREETING}, ${params.name || 'world'}!`, level: params.LOG_LEVEL }
  }
}

exports.main = main

// A non-web action bundled with a file the manifest includes, and a preinstalled module.
const fs = require('fs')
const path = require('path')

async function main (params) {
  const words = fs.readFileSync(path.join(__dirname, 'data', 'words.txt'), 'utf8').trim().split('\n')
  return { name: words[(params.n || 0) % words.length], words: words.length, node: process.version }
}

exports.main = main

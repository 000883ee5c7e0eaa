// async: the conductor starts its body as an activation of its own and returns at once.
const composer = require('openwhisk-composer')
const { increment } = require('./actions')

module.exports = composer.async(increment)

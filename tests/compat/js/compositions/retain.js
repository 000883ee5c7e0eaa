const composer = require('openwhisk-composer')
const { double } = require('./actions')

module.exports = composer.retain(double)

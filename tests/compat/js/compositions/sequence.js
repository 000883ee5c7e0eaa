const composer = require('openwhisk-composer')
const { double, increment } = require('./actions')

module.exports = composer.sequence(double, increment)

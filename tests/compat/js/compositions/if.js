const composer = require('openwhisk-composer')
const { double, increment } = require('./actions')

module.exports = composer.if(p => p.n % 2 === 0, double, increment)

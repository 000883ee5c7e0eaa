const composer = require('openwhisk-composer')
const { double } = require('./actions')

module.exports = composer.while(p => p.n < 100, double)

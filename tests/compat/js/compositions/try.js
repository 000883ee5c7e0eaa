const composer = require('openwhisk-composer')
const { fail } = require('./actions')

module.exports = composer.try(fail, error => ({ recovered: error.error }))

// The actions the compositions of tests/compat/test_openwhisk_composer.py call by name;
// `deploy` creates them with the conductor action.
const composer = require('openwhisk-composer')

module.exports = {
  double: composer.action('composer-double', { action: function ({ n }) { return { n: n * 2 } } }),
  increment: composer.action('composer-increment', { action: function ({ n }) { return { n: n + 1 } } }),
  fail: composer.action('composer-fail', { action: function ({ n }) { return { error: 'failed at ' + n } } })
}

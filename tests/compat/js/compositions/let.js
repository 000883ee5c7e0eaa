// let, repeat, mask, retry and finally: the variable `x` is the let's, and mask hides it from
// the inner let; retry runs its body again while it fails (here it never does).
const composer = require('openwhisk-composer')
const { increment } = require('./actions')

module.exports = composer.let({ x: 10 },
  composer.repeat(3, increment),
  composer.mask(composer.let({ x: 1 }, p => ({ n: p.n + x }))),
  composer.retry(2, increment),
  composer.finally(p => ({ n: p.n + x }), p => ({ n: p.n, done: true })))

/**
 * Returns its input parameters unchanged.
 * @param {object} params any parameters
 */
function main(params) {
  return params || {};
}

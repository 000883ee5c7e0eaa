/**
 * Keeps the first `num` lines of an array (one by default).
 * @param {{lines: string[], num?: number}} params
 * @returns {{lines: string[], num: number}}
 */
function main(params) {
  const lines = Array.isArray(params.lines) ? params.lines : [];
  const num = Number.isInteger(params.num) && params.num >= 0 ? params.num : 1;
  return { lines: lines.slice(0, num), num: num };
}

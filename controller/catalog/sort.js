/**
 * Sorts an array of lines (lexicographically) and reports how many there were.
 * @param {{lines: string[]}} params
 * @returns {{length: number, lines: string[]}}
 */
function main(params) {
  const lines = Array.isArray(params.lines) ? params.lines.map(String) : [];
  lines.sort();
  return { length: lines.length, lines: lines };
}

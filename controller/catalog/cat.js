/**
 * Joins an array of lines into one text.
 * @param {{lines: string[]}} params
 * @returns {{lines: string[], payload: string}}
 */
function main(params) {
  const lines = Array.isArray(params.lines) ? params.lines.map(String) : [];
  return { lines: lines, payload: lines.join('\n') };
}

/**
 * Splits a text into an array of lines, on a separator (a newline by default).
 * @param {{payload?: string, separator?: string}} params
 * @returns {{lines: string[], payload: string}}
 */
function main(params) {
  const payload = params.payload === undefined ? '' : String(params.payload);
  const separator = params.separator === undefined ? '\n' : String(params.separator);
  return { lines: payload.split(separator), payload: payload };
}

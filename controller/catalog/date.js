/**
 * Returns the current date and time, in ISO 8601 and as epoch milliseconds.
 * @returns {{date: string, epoch: number}}
 */
function main() {
  const now = new Date();
  return { date: now.toISOString(), epoch: now.getTime() };
}

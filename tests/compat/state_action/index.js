// An action that uses @adobe/aio-lib-state as App Builder actions do, in either major
// version (`lib`: 5, the default, or 4). `init()` takes the namespace and its key from
// __OW_NAMESPACE and __OW_API_KEY, and the endpoint from AIO_STATE_ENDPOINT, which Homerun
// sets. Library errors are returned, not thrown, so that a test can read them.
const libs = { 4: require('aio-lib-state-v4'), 5: require('@adobe/aio-lib-state') };

async function call (state, p) {
  switch (p.op) {
    case 'put': { // `size`: a value of that many bytes, made here (a parameter could not be so large)
      const value = p.size === undefined ? p.value : 'x'.repeat(p.size);
      return { key: await state.put(p.key, value, p.ttl === undefined ? {} : { ttl: p.ttl }) };
    }
    case 'get': { // `length`: only the value's length (a result could not hold the largest values)
      const got = (await state.get(p.key)) || null;
      return p.length && got ? { length: got.value.length } : { got };
    }
    case 'delete':
      return { deleted: await state.delete(p.key) };
    case 'list': {
      const keys = [];
      for await (const page of state.list(p.match ? { match: p.match } : {})) keys.push(...page.keys);
      return { keys: keys.sort() };
    }
    case 'deleteAll': // v4 deletes every key and ignores the argument; v5 needs `match`
      return { deleted: await state.deleteAll(p.match ? { match: p.match } : {}) };
    case 'any':
      return { any: await state.any() };
    case 'stats':
      return { stats: await state.stats() };
    default:
      return { endpoint: process.env.AIO_STATE_ENDPOINT || null };
  }
}

async function main (p) {
  try {
    // `namespace` names another container, with this namespace's own key
    const ow = p.namespace ? { namespace: p.namespace, auth: process.env.__OW_API_KEY } : undefined;
    const state = await libs[p.lib || 5].init(ow ? { ow } : {});
    return await call(state, p);
  } catch (e) {
    return { failed: { code: e.code || null, message: e.message } };
  }
}

exports.main = main;

/**
 * The path to the first key that secure-json-parse refuses on receipt (`protoAction` and
 * `constructorAction: 'error'`): an own `__proto__` key, or an own `constructor` key whose value is
 * an object with an own `prototype` key. Undefined when there is none.
 */
export function findForbiddenKey(value: unknown): PropertyKey[] | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  if (Array.isArray(value)) {
    for (let index = 0; index < value.length; index++) {
      const path = findForbiddenKey(value[index]);
      if (path !== undefined) return [index, ...path];
    }
    return undefined;
  }
  for (const key of Object.keys(value)) {
    const child = (value as Record<string, unknown>)[key];
    if (
      key === '__proto__' ||
      (key === 'constructor' &&
        typeof child === 'object' &&
        child !== null &&
        Object.hasOwn(child, 'prototype'))
    ) {
      return [key];
    }
    const path = findForbiddenKey(child);
    if (path !== undefined) return [key, ...path];
  }
  return undefined;
}

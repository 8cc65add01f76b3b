// Validates Backstage entities (multi-document YAML on stdin) with the
// validators Backstage's own catalog uses: the entity policies
// (envelope/schema, field formats, no foreign root fields, default
// namespace) and the kind validator of each entity's kind. Prints one line per
// entity and exits non-zero if any is invalid. Also checks that every
// reference (owner, system, dependsOn) parses as an entity reference.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import {
  EntityPolicies, DefaultNamespaceEntityPolicy, FieldFormatEntityPolicy,
  NoForeignRootFieldsEntityPolicy, SchemaValidEntityPolicy,
  componentEntityV1alpha1Validator, systemEntityV1alpha1Validator,
  resourceEntityV1alpha1Validator, groupEntityV1alpha1Validator, parseEntityRef,
} from '@backstage/catalog-model';

const policy = EntityPolicies.allOf([
  new DefaultNamespaceEntityPolicy(),
  new NoForeignRootFieldsEntityPolicy(),
  new FieldFormatEntityPolicy(),
  new SchemaValidEntityPolicy(),
]);
const kindValidators = {
  Component: componentEntityV1alpha1Validator,
  System: systemEntityV1alpha1Validator,
  Resource: resourceEntityV1alpha1Validator,
  Group: groupEntityV1alpha1Validator,
};

const docs = parseAllDocuments(readFileSync(0, 'utf8')).map(d => d.toJS()).filter(Boolean);
let failures = 0;
for (const entity of docs) {
  const ref = `${entity.kind}:${entity.metadata?.namespace ?? 'default'}/${entity.metadata?.name}`;
  try {
    const checked = await policy.enforce(entity);
    if (!checked) throw new Error('rejected by the entity policies');
    const validator = kindValidators[entity.kind];
    if (!validator) throw new Error(`no validator for kind ${entity.kind}`);
    if ((await validator.check(entity)) !== true) throw new Error(`not a valid ${entity.kind}`);
    const refs = [entity.spec?.owner, entity.spec?.system, ...(entity.spec?.dependsOn ?? [])].filter(Boolean);
    for (const r of refs) parseEntityRef(r, { defaultKind: 'Group', defaultNamespace: entity.metadata.namespace });
    console.log(`valid   ${ref}`);
  } catch (e) {
    failures++;
    console.log(`INVALID ${ref}: ${e.message}`);
  }
}
console.log(`${docs.length} entities, ${failures} invalid`);
process.exit(failures === 0 && docs.length > 0 ? 0 : 1);

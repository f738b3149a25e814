export {
  classIndexOf,
  MAX_CATEGORIES,
  META_CLASS_VALUES,
  META_LABEL,
  META_PIPELINE,
  META_PROTECTED_DATA,
  type TabularMetrics,
  type TrainTabularOptions,
  type TrainTabularResult,
  tabularMetrics,
  trainTabular,
  withMetadata,
} from './tabular.js';

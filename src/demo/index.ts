export { DEMO_STAGES, type DemoReport, runDemo } from './run.js';
export type { DemoOptions, DemoStage, DemoState, StageContext, StageResult } from './stage.js';

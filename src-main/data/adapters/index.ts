export { loadMvtec } from './mvtec';
export { loadFolders } from './folders';
export { loadCsv, parseLabel, DEFAULT_ANOMALY_CLASS } from './csv';
export { loadHeadct, HEADCT_ANOMALY_CLASS } from './headct';
export { loadElpv } from './elpv';
export { loadKolektorSdd, KOLEKTOR_ANOMALY_CLASS } from './kolektorsdd';
export { IMAGE_EXTENSIONS, isImageName } from './common';

// Writes a TID 1500 SR the way OHIF v3 exports one: @cornerstonejs/adapters
// MeasurementReport.generateReport over Length annotations, serialised by dcmjs.
//
// Usage: node dcmjs_sr.js spec.json out.dcm
// spec.json: {"patientId", "studyDate" (YYYYMMDD), "studyUid", "seriesUid", "imageUid",
//             "lesions": [{"label", "length"}]}
// Each lesion is a Length annotation on one CT image with the user's free-text label,
// as OHIF's measurement panel stores it (annotation.data.label).
'use strict';

const fs = require('fs');
const dcmjs = require('dcmjs');
const { adaptersSR, helpers } = require('@cornerstonejs/adapters');

const [specPath, outPath] = process.argv.slice(2);
const spec = JSON.parse(fs.readFileSync(specPath, 'utf8'));
const imageId = `wadouri:${spec.imageUid}`;
const CT_IMAGE_STORAGE = '1.2.840.10008.5.1.4.1.1.2';

// Image coordinates are world coordinates here: no viewport exists outside a browser.
helpers.setWorldToImageCoords((_imageId, point) => [point[0], point[1]]);

// What OHIF's metadata provider answers for the referenced image.
const metadataProvider = {
  get(type, id) {
    if (id !== imageId) return undefined;
    if (type === 'sopCommonModule') {
      return { sopClassUID: CT_IMAGE_STORAGE, sopInstanceUID: spec.imageUid };
    }
    if (type === 'instance') {
      return {
        PatientID: spec.patientId,
        PatientName: 'Test^Ohif',
        PatientBirthDate: '19600101',
        PatientSex: 'F',
        StudyInstanceUID: spec.studyUid,
        StudyDate: spec.studyDate,
        StudyTime: '120000',
        StudyID: '1',
        AccessionNumber: `A${spec.studyDate}`,
        SeriesInstanceUID: spec.seriesUid,
        SeriesNumber: 1,
        Modality: 'CT',
        SOPInstanceUID: spec.imageUid,
        SOPClassUID: CT_IMAGE_STORAGE,
      };
    }
    return undefined;
  },
};

const annotations = spec.lesions.map((lesion, index) => ({
  annotationUID: `annotation-${index}`,
  metadata: { toolName: 'Length', referencedImageId: imageId },
  data: {
    label: lesion.label,
    handles: { points: [[10, 10 + index * 20, 0], [10 + lesion.length, 10 + index * 20, 0]] },
    cachedStats: { [`imageId:${imageId}`]: { length: lesion.length, unit: 'mm' } },
  },
}));
const toolState = { [imageId]: { Length: { data: annotations } } };

const report = adaptersSR.Cornerstone3D.MeasurementReport.generateReport(
  toolState,
  metadataProvider,
  {},
);
const buffer = dcmjs.data.datasetToBuffer(report.dataset);
fs.writeFileSync(outPath, Buffer.from(buffer));
